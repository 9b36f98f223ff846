"""A transform module as a user would write one, registered through TRANSFORM_MODULES."""

from aurora_replication.pipeline.transforms import register


@register("shout_names")
def shout_names(rows, plan):
    i = [c.name for c in plan.columns].index("name")
    for row in rows:
        yield row[:i] + (row[i].upper() if row[i] is not None else None,) + row[i + 1 :]
