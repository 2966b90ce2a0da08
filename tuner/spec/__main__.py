"""``python -m tuner.spec``: print the sweep file's reference (``docs/sweep-file.md``)."""

from tuner.spec.reference import reference

print(reference(), end="")
