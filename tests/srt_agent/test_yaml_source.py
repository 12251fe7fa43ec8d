"""YAML loading with line numbers: duplicate keys, invalid YAML, missing files."""

import pytest

from srt_agent.errors import ConfigError
from srt_agent.yaml_source import load_yaml, parse_yaml

TEXT = """\
name: x          # line 1
model:           # line 2
  path: m        # line 3
extra_mount:     # line 4
  - /a:/b        # line 5
  - /c:/d        # line 6
backend:
  sglang_config:
    decode:
      tp-size: 8   # line 10
"""


def test_lines_of_keys_and_list_items():
    doc = parse_yaml(TEXT, "job.yaml")
    assert doc.data["model"] == {"path": "m"}
    assert doc.lines[("name",)] == 1
    assert doc.lines[("model", "path")] == 3
    assert doc.lines[("extra_mount", 0)] == 5
    assert doc.lines[("extra_mount", 1)] == 6
    assert doc.lines[("backend", "sglang_config", "decode", "tp-size")] == 10


def test_line_of_falls_back_to_nearest_ancestor():
    doc = parse_yaml(TEXT, "job.yaml")
    assert doc.line_of(("backend", "sglang_config", "decode", "not-there")) == 10 - 1
    assert doc.line_of(("model", "container")) == 2
    assert doc.line_of(("nothing",)) is None
    assert doc.line_of(()) is None


@pytest.mark.parametrize("text, line, key", [
    ("a: 1\nb: 2\na: 3\n", 3, "a"),
    ("s:\n  x: 1\n  y: 2\n  x: 1\n", 4, "s.x"),
    ("l:\n  - k: 1\n    k: 2\n", 3, "l.0.k"),
])
def test_duplicate_keys_are_errors(text, line, key):
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "dup.yaml")
    err = info.value
    assert (err.file, err.line, err.key) == ("dup.yaml", line, key)
    assert "duplicate key" in str(err) and "first defined on line" in str(err)
    assert str(err).startswith(f"dup.yaml:{line}: {key}: ")


@pytest.mark.parametrize("text, line", [
    ("name: [\n", 2),
    ("a: 1\n b: 2\n", 2),
    ("a: 'unterminated\nb: 2\n", 3),
    ("a:\n\t- tab\n", 2),
])
def test_invalid_yaml_names_file_and_line(text, line):
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "bad.yaml")
    assert info.value.line == line
    assert str(info.value).startswith(f"bad.yaml:{line}: invalid YAML")
    assert "fix:" in str(info.value)


def test_empty_document_has_no_data():
    doc = parse_yaml("# only a comment\n", "e.yaml")
    assert doc.data is None and doc.lines == {}


def test_load_yaml_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_yaml(tmp_path / "nope.yaml")
    assert "file not found" in str(info.value)
    assert str(tmp_path / "nope.yaml") in str(info.value)


def test_load_yaml_reads_file(tmp_path):
    p = tmp_path / "j.yaml"
    p.write_text("name: é ünï\n")
    doc = load_yaml(p)
    assert doc.path == str(p) and doc.data == {"name": "é ünï"}


def test_unreadable_path_is_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_yaml(tmp_path)  # a directory
    assert "cannot read file" in str(info.value)


def _every_yaml_file():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    return sorted([*root.glob("configs/*.yaml"), *root.glob("tests/golden/**/*.yaml"), *root.glob("tests/fixtures/**/*.yaml")])


def test_the_fast_parser_reads_every_file_as_the_pure_python_one_does():
    """parse_yaml uses libyaml when PyYAML has it: data and lines must match what yaml.safe_load and
    the pure-Python composer give, for every YAML file of the project."""
    import yaml

    from srt_agent import yaml_source

    files = _every_yaml_file()
    assert len(files) > 10
    for path in files:
        text = path.read_text()
        doc = parse_yaml(text, str(path))
        assert doc.data == yaml.safe_load(text), path
        pure_lines: dict = {}
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            yaml_source._walk(node, (), pure_lines, str(path))
        assert doc.lines == pure_lines, path


def test_a_yaml_error_is_worded_by_the_pure_python_parser():
    with pytest.raises(ConfigError) as exc:
        parse_yaml("a: b: c\n", "bad.yaml")
    assert "mapping values are not allowed here" in str(exc.value)
    assert exc.value.line == 1


def test_a_merge_key_with_an_override_is_data_not_a_duplicate():
    text = "base: &b\n  a: 1\n  c: 2\nx:\n  <<: *b\n  a: 5\n"
    doc = parse_yaml(text, "t.yaml")
    assert doc.data == {"base": {"a": 1, "c": 2}, "x": {"a": 5, "c": 2}}
    assert doc.lines[("x", "a")] == 6 and doc.lines[("base", "a")] == 2
