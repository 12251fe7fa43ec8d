"""`srtctl convert FILE [-o OUT]`: an incumbent srt-slurm (v1) recipe as a job file of this project."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srt_agent.atomic import write_text_atomic
from srt_agent.cluster_config import load_cluster_config
from srt_agent.errors import ConfigError
from srt_agent.incumbent import convert_document, is_incumbent
from srt_agent.yaml_source import load_yaml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="srt-slurm recipe (YAML)")
    parser.add_argument("-o", "--output", help="write the converted job file here (default: stdout)")


def run(args: argparse.Namespace) -> int:
    doc = load_yaml(args.file)
    if not is_incumbent(doc.data):
        raise ConfigError("this is not an srt-slurm (v1) recipe: none of its sections is one srtctl converts "
                          "(dynamo, frontend, health_check, sbatch_directives, backend.type, ...)",
                          file=args.file, line=1,
                          hint=f"if it is already an srtctl job file, run `srtctl dry-run -f {args.file}`")
    conversion = convert_document(doc, load_cluster_config())  # accuracy evals: eval_datasets_dir
    text = conversion.text()
    if args.output:
        out = Path(args.output)
        if out.resolve() == Path(args.file).resolve():
            raise ConfigError("refusing to overwrite the recipe with its conversion", key="-o",
                              hint="write to a new file, e.g. -o job.yaml")
        write_text_atomic(out, text)
        print(f"Wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    print(conversion.notice(), file=sys.stderr)
    return 0
