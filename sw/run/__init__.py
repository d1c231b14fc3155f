"""Running compiled models: the run loop, the ISA simulator, the board driver."""
