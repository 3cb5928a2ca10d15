import sys

from bench.cli import enable_compilation_cache, main

enable_compilation_cache()
sys.exit(main())
