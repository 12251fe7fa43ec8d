"""srt-slurm: the in-allocation agent and the config/plan model it shares with `srtctl`."""

__version__ = "0.1.0"
