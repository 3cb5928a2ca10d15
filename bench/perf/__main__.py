import sys

import numpy as np

from bench.perf.run import main

np.seterr(all="ignore")
sys.exit(main())
