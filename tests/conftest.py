import sys
from pathlib import Path

# The tests import their shared builders as `helpers` and `kube`.
sys.path.insert(0, str(Path(__file__).parent))

pytest_plugins = ["cluster_fixtures"]
