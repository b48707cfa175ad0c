"""Development support shared by the tests, the benchmark (bench/) and the scripts (scripts/): programs and
helpers GreenLens needs beside it in development (a Mosquitto broker, a free port). Never shipped in a
component or the ggsim image; imported from the repository root (pytest's rootdir, `python -m bench`)."""
