"""``dfer params [--write | --markdown]``: the files generated from the typed settings
(``dfer_ros.ros.parameters``): print config/dfer.yaml (default) or the docs/node.md table, or rewrite every stale
generated file (config/dfer.yaml, config/pipeline.yaml, the table in docs/node.md)."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer params", description=__doc__.split("\n")[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--write", action="store_true", help="rewrite the stale generated files")
    what.add_argument("--markdown", action="store_true", help="print the parameters table of docs/node.md")
    args = parser.parse_args(argv)
    from dfer_ros.ros.parameters import all_parameter_specs, markdown_table, write_generated_files, yaml_text

    if args.write:
        for path in write_generated_files():
            print(f"wrote {path}")
    elif args.markdown:
        print(markdown_table(all_parameter_specs()), end="")
    else:
        print(yaml_text(all_parameter_specs()), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
