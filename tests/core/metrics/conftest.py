import sys
from pathlib import Path

# slow_reference.py lives next to the tests; make it importable from any rootdir / import mode.
sys.path.insert(0, str(Path(__file__).parent))
