"""``python -m tuner.spec``: print the sweep file's reference (``docs/sweep-file.md``)."""

from tuner.spec.schema import reference

print(reference(), end="")
