"""The integer model: IR, golden reference, popcount kernels, host-side tensor layout, topologies, random models."""
