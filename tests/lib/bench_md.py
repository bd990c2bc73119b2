"""BENCHMARKS.md is written by several benchmark drivers, each owning some
"## " sections: tests/bench/bench.py (most), attach_bench.py, heap_bench.py,
and sections measured by ctest drivers (web UI). A driver replaces only its
own sections and keeps every other one as it was."""
import os

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PATH = os.path.join(ROOT, "BENCHMARKS.md")


def split_sections(text):
    """(preamble, [(heading line, body incl. heading)]) of a Markdown text."""
    parts = ("\n" + text).split("\n## ")
    preamble = parts[0][1:]
    sections = []
    for p in parts[1:]:
        heading = "## " + p.split("\n", 1)[0].strip()
        sections.append((heading, "## " + p.rstrip("\n") + "\n"))
    return preamble, sections


def replace_section(heading_prefix, text, path=PATH):
    """Puts "text" (a section starting "## ...") where the section whose
    heading starts with heading_prefix is, or at the end."""
    old = open(path).read() if os.path.exists(path) else ""
    preamble, sections = split_sections(old)
    body = text.rstrip("\n") + "\n"
    out, done = [], False
    for heading, sec in sections:
        if heading.startswith(heading_prefix):
            if not done:
                out.append(body)
            done = True
        else:
            out.append(sec)
    if not done:
        out.append(body)
    with open(path, "w") as f:
        f.write(preamble.rstrip("\n") + "\n\n" + "\n".join(out) if preamble.strip()
                else "\n".join(out))


def keep_foreign_sections(new_text, path=PATH):
    """new_text with every section of the existing file that new_text does not
    have itself (by heading) appended, in their old order."""
    if not os.path.exists(path):
        return new_text
    _, old_sections = split_sections(open(path).read())
    _, new_sections = split_sections(new_text)
    mine = {h for h, _ in new_sections}
    kept = [sec for h, sec in old_sections if h not in mine]
    if not kept:
        return new_text
    return new_text.rstrip("\n") + "\n\n" + "\n".join(kept)
