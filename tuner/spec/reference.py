"""``docs/sweep-file.md``: the sweep file's reference, generated from the schema
(:mod:`tuner.spec.schema`; ``python -m tuner.spec > docs/sweep-file.md``)."""

from __future__ import annotations

from tuner.spec import schema


def reference() -> str:
    """The sweep file's reference table (Markdown), as ``docs/sweep-file.md`` holds it."""
    lines = [
        "# Sweep file reference",
        "",
        "Generated from `tuner/spec/schema.py` (`python -m tuner.spec > docs/sweep-file.md`); "
        "a test keeps it in step. Unknown keys are errors.",
        "",
    ]

    def table(title: str, fields: dict[str, schema.Field], prefix: str) -> None:
        lines.extend([f"## {title}", "", "| key | type | default | rule | meaning |", "|---|---|---|---|---|"])
        for key, fld in fields.items():
            default = (
                "required" if fld.default is schema.REQUIRED else ("–" if fld.default is None else f"`{fld.default}`")
            )
            rule = fld.rule or (", ".join(fld.choices) if fld.choices else "")
            if fld.kind == "name":
                rule = schema.NAME_RULE
            cells = [f"`{prefix}{key}`", schema.kind_text(fld), default, rule, fld.doc]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")

    table("Top level", schema.TOP_FIELDS, "")
    table("data", schema.DATA_FIELDS, "data.")
    for source, fields in schema.DATA_SOURCE_FIELDS.items():
        if fields:
            table(f"data: {source}" if source != "callable" else "data: 'package.module:function'", fields, "data.")
    table("model (built-in trainer)", schema.MODEL_FIELDS, "model.")
    for name, fields in schema.MODEL_EXTRA_FIELDS.items():
        if fields:
            table(f"model: {name}" if name != "callable" else "model: 'package.module:function'", fields, "model.")
    table("train (built-in trainer)", schema.TRAIN_FIELDS, "train.")
    table("search", schema.SEARCH_FIELDS, "search.")
    table("search.refine", schema.REFINE_FIELDS, "search.refine.")
    table("scheduler", schema.SCHEDULER_FIELDS, "scheduler.")
    table("resources", schema.RESOURCES_FIELDS, "resources.")
    lines += [
        "## search.parameters.PATH",
        "",
        "`{distribution: D, min: A, max: B}` with D one of uniform, log_uniform, one_minus_log_uniform, "
        "int_uniform, int_log_uniform; or `{values: [...]}`; `grid_points: N` for a grid search. PATH is a "
        "dotted path into the config (`train.lr`, `model.hidden`; with `function`: into `config`). Each of "
        "`values` passes the rule of its key (a `model.name`: mlp, cnn or an importable function), is plain "
        "JSON data (strings, finite numbers, true/false, lists and mappings of those; null only where the key "
        "takes it) and is listed once (1, 1.0 are one value; true is another). `train.task` is not searched: "
        "the data and the metric fix it.",
        "",
    ]
    return "\n".join(lines)
