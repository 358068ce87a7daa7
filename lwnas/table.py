"""Plain-text tables for the command line (lwnas configs, show, runs)."""


def print_table(rows: list[dict], columns: list[str]):
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in columns))
