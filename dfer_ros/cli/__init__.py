"""The ``dfer`` command (``main.py``: the table of verbs) and one module per verb: thin argparse layers over the
library.

Importing this package caps glibc's malloc arenas (``ros.memory.limit_malloc_arenas``, as the node does) before
any tool starts an inference or loader thread: offline runs over long videos otherwise grow their heap with
the arenas of ONNX Runtime's and the pipeline's threads (``dfer eval video``: peak RSS 400 MiB at 600
frames, 433 MiB at 4,011). Nothing in the library imports ``cli``, so only the command-line tools get it.
"""
from dfer_ros.ros.memory import limit_malloc_arenas

limit_malloc_arenas()
