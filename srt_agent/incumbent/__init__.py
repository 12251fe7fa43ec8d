"""The incumbent srt-slurm's recipe format (its v1 schema), converted to this project's job file.

`is_incumbent(data)` recognises a recipe by its sections; `convert_document(doc)` returns the
converted job (with line numbers pointing into the recipe) and the notes of what was approximated
or dropped, or raises ConfigErrors naming every key that has no equivalent. The mapping, key by
key, is `mapping.MAPPING` (docs/migrating.md is generated from it).
"""

from .detect import is_incumbent

__all__ = ["Conversion", "convert_document", "is_incumbent"]


def __getattr__(name: str):
    """The converter is imported when first named, so recognising a job file costs no import of it."""
    if name in ("Conversion", "convert_document"):
        from . import convert  # lazy, CLI start-up: dry-run of a job in this project's format never converts

        return getattr(convert, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
