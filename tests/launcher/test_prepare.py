"""prepare(): validate + plan + render. The sbatch script: golden file, compatibility switches, and
quoting that holds against hostile names and paths (bash runs the script; a model of sbatch's
#SBATCH parser, checked against the real sbatch when the local cluster is there, reads the header)."""

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from launcher.prepare import check_setup_script, parse_tags, placeholder_nodes, prepare, render_sbatch, slug
from srt_agent import __version__
from srt_agent.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
BASH = shutil.which("bash")


def site(tmp: Path, **cluster) -> Path:
    """A checkout-like tree: srtslurm.yaml, configs/, logs dir. Returns the cluster file."""
    root = tmp / "srt"
    (root / "configs").mkdir(parents=True, exist_ok=True)
    data = {"default_account": "acct", "default_partition": "batch", "default_time_limit": "4:00:00",
            "gpus_per_node": 4, "srtctl_root": str(root), "logs_dir": str(tmp / "logs"),
            "python": "/usr/bin/python3",
            "model_paths": {"deepseek-r1": "/models/DeepSeek-R1"},
            "containers": {"latest": "/containers/latest.sqsh"}, **cluster}
    path = tmp / "srtslurm.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def seed_job(tmp: Path, **over) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "my-job.yaml").read_text())
    for key, value in over.items():
        section, _, field = key.partition("__")
        if field:
            data.setdefault(section, {})[field] = value
        else:
            data[section] = value
    p = tmp / "job.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return p


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.delenv("SRTSLURM_CONFIG", raising=False)
    monkeypatch.delenv("SRTCTL_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def normalise(text: str, tmp: Path, timestamp: str) -> str:
    return (text.replace(str(tmp), "<TMP>").replace(timestamp, "<TIMESTAMP>")
            .replace(f"srtctl {__version__}", "srtctl <VERSION>"))


# ---- prepare ----------------------------------------------------------------------------

def test_prepare_seed_example(env):
    prep = prepare(ROOT / "configs" / "my-job.yaml", cluster_file=site(env), tags="a,b")
    assert re.fullmatch(r"\d{8}_\d{6}", prep.timestamp)
    assert prep.run_suffix == f"_1P_1D_{prep.timestamp}" and prep.topology == "1P_1D"
    assert prep.tags == ["a", "b"] and prep.setup_script is None
    assert set(prep.files) == {"job.yaml", "resolved.json", "job.sbatch"}
    assert prep.files["job.yaml"] == (ROOT / "configs" / "my-job.yaml").read_text()
    assert prep.run_dir_placeholder == f"{env}/logs/JOBID{prep.run_suffix}"
    assert [n.name for n in prep.plan.nodes] == ["node0", "node1", "node2"]
    assert prep.resolved.account == "acct"


def test_prepare_local_switches_to_host_processes(env):
    prep = prepare(ROOT / "configs" / "my-job.yaml", cluster_file=site(env), local=True)
    assert prep.cluster.executor == "local" and prep.cluster.container_runtime == "none"
    assert prep.plan.container_image is None and prep.plan.model_path == "/models/DeepSeek-R1"


def test_aggregated_suffix(env):
    prep = prepare(ROOT / "configs" / "agg-example.yaml",
                   cluster_file=site(env, model_paths={"llama-70b": "/m/l"}, containers={"stable": "/c/s.sqsh"}))
    assert prep.run_suffix.startswith("_4A_") and prep.topology == "4A"


def test_prepare_reports_config_errors(env):
    with pytest.raises(ConfigError) as info:
        prepare(seed_job(env, model__path="nope"), cluster_file=site(env))
    assert "known model_paths aliases in" in str(info.value) and "srtslurm.yaml" in str(info.value)


# ---- setup script, tags, slug -----------------------------------------------------------

def test_setup_script_checks(env):
    from srt_agent.cluster_config import load_cluster_config

    cluster = load_cluster_config(site(env))
    (env / "srt" / "configs" / "custom-setup.sh").write_text("#!/bin/bash\n")
    assert check_setup_script(None, cluster) is None
    assert check_setup_script("custom-setup.sh", cluster) == "custom-setup.sh"
    assert check_setup_script("configs/custom-setup.sh", cluster) == "custom-setup.sh"
    for bad, needle in [("/etc/passwd", "must be a file name inside"), ("../x.sh", "must be a file name inside"),
                        ("  ", "must be a file name inside"), ("missing.sh", "not found in")]:
        with pytest.raises(ConfigError) as info:
            check_setup_script(bad, cluster)
        assert needle in str(info.value) and info.value.key == "--setup-script"


def test_prepare_with_setup_script_marks_workers(env):
    cluster_file = site(env)
    (env / "srt" / "configs" / "custom-setup.sh").write_text("#!/bin/bash\n")
    prep = prepare(ROOT / "configs" / "my-job.yaml", cluster_file=cluster_file, setup_script="custom-setup.sh")
    assert prep.setup_script == "custom-setup.sh"
    assert {p.name for p in prep.plan.processes if p.setup_script} == {"prefill-0", "decode-0-r0", "decode-0-r1"}


@pytest.mark.parametrize("text, tags", [(None, []), ("", []), ("experiment,baseline,v2", ["experiment", "baseline", "v2"]),
                                        (" a , ,b ", ["a", "b"]), ("v1.2:rc+1", ["v1.2:rc+1"])])
def test_parse_tags(text, tags):
    assert parse_tags(text) == tags


@pytest.mark.parametrize("text", ["a b", "x;y", "$(id)", "ü", "a" * 65])
def test_bad_tags(text):
    with pytest.raises(ConfigError) as info:
        parse_tags(text)
    assert info.value.key == "--tags"


def test_slug_and_placeholders():
    assert slug("my benchmark: DS/R1 'x'") == "my-benchmark-DS-R1-x"
    assert slug("...") == "job" and len(slug("a" * 200)) == 80
    assert [(n.name, n.address) for n in placeholder_nodes(2)] == [("node0", "node0"), ("node1", "node1")]


# ---- the sbatch script ------------------------------------------------------------------

def test_golden_job_sbatch(env):
    prep = prepare(ROOT / "configs" / "my-job.yaml", cluster_file=site(env))
    text = normalise(prep.files["job.sbatch"], env, prep.timestamp)
    golden = GOLDEN / "job.sbatch"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text(), "rendered sbatch script changed; UPDATE_GOLDEN=1 regenerates the golden file"


@pytest.mark.parametrize("switch, directive", [("use_gpus_per_node_directive", "#SBATCH --gpus-per-node=4"),
                                               ("use_segment_sbatch_directive", "#SBATCH --segment=3")])
def test_compatibility_switches(env, switch, directive):
    on = prepare(ROOT / "configs" / "my-job.yaml", cluster_file=site(env)).files["job.sbatch"]
    off = prepare(ROOT / "configs" / "my-job.yaml", cluster_file=site(env, **{switch: False})).files["job.sbatch"]
    assert directive in on.splitlines() and directive not in off
    assert len(off.splitlines()) == len(on.splitlines()) - 1


def test_optional_directives_left_out(env):
    cluster_file = site(env, default_account=None, default_partition=None, default_time_limit=None)
    text = prepare(seed_job(env, slurm={}), cluster_file=cluster_file).files["job.sbatch"]
    assert "--account" not in text and "--partition" not in text and "--time" not in text


def test_resume_script_uses_the_fixed_run_dir(env):
    prep = prepare(ROOT / "configs" / "my-job.yaml", cluster_file=site(env))
    text = render_sbatch(prep, fixed_run_dir=f"{env}/logs/123_1P_1D_x")
    assert f"#SBATCH --output={env}/logs/123_1P_1D_x/slurm-%j.out" in text
    assert f"RUN_DIR={env}/logs/123_1P_1D_x\n" in text


def test_logs_dir_with_backslash_or_newline_is_refused(env):
    no_nginx = seed_job(env, backend__enable_multiple_frontends=False)
    for bad in ("back\\slash", "new\nline"):
        with pytest.raises(ConfigError) as info:
            prepare(no_nginx, cluster_file=site(env, logs_dir=str(env / bad)))
        assert "#SBATCH --output" in str(info.value) and info.value.key == "logs_dir"
        with pytest.raises(ConfigError):  # nginx, whose config lives in the run dir, refuses it too
            prepare(ROOT / "configs" / "my-job.yaml", cluster_file=site(env, logs_dir=str(env / bad)))


def test_percent_in_logs_dir_is_escaped_for_sbatch_only(env):
    prep = prepare(ROOT / "configs" / "my-job.yaml", cluster_file=site(env, logs_dir=str(env / "100%u")))
    text = prep.files["job.sbatch"]
    assert f"--output={env}/100%%u/%j_" in text and f"RUN_DIR={env}/100%u/" in text


@pytest.mark.parametrize("key, value", [("slurm__account", "a\nb"), ("slurm__partition", "p\rq")])
def test_control_characters_refused_where_sbatch_reads_lines(env, key, value):
    with pytest.raises(ConfigError) as info:
        prepare(seed_job(env, **{key: value}), cluster_file=site(env))
    assert "#SBATCH line" in str(info.value)


# ---- hostile values ---------------------------------------------------------------------

def sbatch_options(script: str) -> dict[str, str]:
    """The #SBATCH options as sbatch reads them (slurm's _get_argument: quotes group, a backslash
    escapes the next character even inside single quotes, an unquoted # starts a comment)."""
    out = {}
    for line in script.splitlines()[1:]:
        if not line.startswith("#SBATCH"):
            break
        rest, arg, quote, i = line[len("#SBATCH"):].lstrip(), [], None, 0
        while i < len(rest):
            c = rest[i]
            if c == "\\":
                i += 1
                if i < len(rest):
                    arg.append(rest[i])
            elif quote:
                if c == quote:
                    quote = None
                else:
                    arg.append(c)
            elif c in "'\"":
                quote = c
            elif c == "#" or c.isspace():
                break
            else:
                arg.append(c)
            i += 1
        name, _, value = "".join(arg).partition("=")
        out[name] = value
    return out


FRAGMENTS = ["'", '"', "$(touch pwned)", "`touch pwned`", "${HOME}", ";", "&&", "|", "\\", "\\'", "\\\\", " ",
             "  ", "#", "*", "?", "~", "!", "%", "%j", "{a,b}", "é", "漢字", "🙂", "-x", "=", ",", ":"]
printable = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=8)
hostile = st.lists(st.one_of(st.sampled_from(FRAGMENTS), printable), min_size=1, max_size=6).map("".join).filter(bool)
path_part = hostile.map(lambda s: s.replace("/", "_").replace("\\", "_")).filter(lambda s: s not in (".", ".."))


def fake_python(path: Path):
    """An executable at a hostile path that records how the sbatch script called it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\n{ for a in "$@"; do printf "%s\\0" "$a"; done; printf "%s\\0" "$SRTCTL_ROOT" '
                    '"$SRT_EXECUTOR" "$(pwd)"; } > "$SRT_T_OUT"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.skipif(not BASH, reason="needs bash")
@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=hostile, account=hostile, partition=hostile, logs=path_part, root=path_part, py=path_part)
def test_hostile_names_and_paths_survive_sbatch_and_bash(tmp_path_factory, name, account, partition, logs, root,
                                                         py):
    tmp = tmp_path_factory.mktemp("h")
    cluster_file = site(tmp, default_account=account, default_partition=partition,
                        logs_dir=str(tmp / f"L{logs}"), python=str(tmp / f"P{py}" / "python"))
    (tmp / f"R{root}").mkdir()
    cfg = yaml.safe_load(cluster_file.read_text())
    cfg["srtctl_root"] = str(tmp / f"R{root}")
    cluster_file.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    # no nginx: its config file lives in the run dir and refuses quotes, $, ; etc. (tested in test_nginx)
    prep = prepare(seed_job(tmp, name=name, backend__enable_multiple_frontends=False), cluster_file=cluster_file)
    script = prep.files["job.sbatch"]
    logs_dir = str(tmp / f"L{logs}")

    # what sbatch reads
    opts = sbatch_options(script)
    assert opts["--job-name"] == name and opts["--account"] == account and opts["--partition"] == partition
    assert opts["--output"] == f"{logs_dir.replace('%', '%%')}/%j{prep.run_suffix}/slurm-%j.out"
    assert opts["--nodes"] == "3" and opts["--time"] == "02:00:00"

    # what bash does with the rest: run it for real
    job_id = "4711"
    run_dir = f"{logs_dir}/{job_id}{prep.run_suffix}"
    os.makedirs(run_dir)
    fake_python(tmp / f"P{py}" / "python")
    path = tmp / "job.sbatch"
    path.write_text(script)
    out = tmp / "out"
    done = subprocess.run([BASH, str(path)], cwd=tmp, capture_output=True, timeout=20,
                          env={"PATH": os.environ["PATH"], "SLURM_JOB_ID": job_id, "SRT_T_OUT": str(out)})
    assert done.returncode == 0, done.stderr
    got = out.read_bytes().decode().split("\0")[:-1]
    assert got == ["-m", "srt_agent", run_dir, str(tmp / f"R{root}"), "slurm", run_dir]
    assert not (tmp / "pwned").exists()


SBATCH_CASES = ["plain", "a b'c\\d$(x)#e\"f", "ünï cødé  two  spaces ; `y` %j #z", "\\\\", "'", '"', "-x", "a=b,c"]


@pytest.mark.cluster
def test_real_sbatch_reads_the_header_as_the_model_does(env, local_cluster):
    """`sbatch --test-only -v` prints every option it parsed; it must match the values we meant."""
    for i, value in enumerate(SBATCH_CASES):
        cluster_file = site(env / str(i), default_account=value, default_partition="batch",
                            use_segment_sbatch_directive=False)  # SLURM 22.05 has no --segment
        prep = prepare(seed_job(env / str(i), name=value), cluster_file=cluster_file)
        script = env / str(i) / "job.sbatch"
        script.write_text(prep.files["job.sbatch"])
        done = subprocess.run(["sbatch", "--test-only", "-v", str(script)], capture_output=True, text=True,
                              timeout=60, env={**os.environ, "SLURM_CONF": str(local_cluster.slurm_conf)})
        printed = dict(re.findall(r"^sbatch: (\S+)\s*: (.*)$", done.stderr, re.MULTILINE))
        assert printed.get("job-name") == value, done.stderr
        assert printed.get("account") == value, done.stderr
        assert printed.get("output") == sbatch_options(prep.files["job.sbatch"])["--output"]
        assert sbatch_options(prep.files["job.sbatch"])["--job-name"] == value
