"""Run the main job on the embedded data (placeholder, replaced below)."""
NAME = "demo"
HELP = "run the end-to-end demo"


def add_arguments(parser):
    pass


def run(args):
    return 0
