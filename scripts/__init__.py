"""Developer commands, run from the repository root as modules (`python -m scripts.run_demo`); the ones that
import nothing of the repository also run as files (`python scripts/graph_accuracy.py`)."""
