"""A short text summary of a project (``labkit project info``, ``labkit demo``)."""
from __future__ import annotations

from labkit.services.project import Project

__all__ = ["project_summary"]


def project_summary(project: Project) -> str:
    """Counts by kind and source, and each annotator's progress, as lines of text."""
    info = project.info()
    lines = [f"labkit project {info['location']} ({info['backend']})",
             f"  classes     {len(info['classes'])}: {', '.join(info['classes'])}",
             f"  images      {info['images']}",
             f"  annotators  {info['annotators']} ({info['simulated_annotators']} simulated)",
             f"  annotations {info['annotations']}  by kind {info['annotations_by_kind']}",
             f"              by source {info['annotations_by_source']}"]
    prog = project.progress()
    if len(prog):
        lines.append("  progress per annotator (done / assigned):")
        lines += [f"    {name:<16} {int(done + skipped):>5} / {int(assigned):<5} {fraction:6.1%}"
                  for name, done, skipped, assigned, fraction in
                  zip(prog.index, prog["done"], prog["skipped"], prog["assigned"], prog["fraction_done"])]
    return "\n".join(lines)
