"""The submit side of srt-slurm: the `srtctl` command."""
