"""ggsim: a simulator of the AWS IoT Greengrass v2 nucleus."""

__version__ = "0.1.0"
# The nucleus version reported to components (GGC_VERSION) and by the CLI.
NUCLEUS_VERSION = "2.14.0"
