"""`rl-cs list`: the worlds and the methods x worlds table, read from the registries."""

from __future__ import annotations

from rl_cs import registry


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def print_listing(world: str | None = None) -> int:
    worlds = registry.worlds()
    if world is not None:
        registry.get_world(world)
        worlds = {world: worlds[world]}
    print("Worlds\n")
    print(_table(["world", "paper", "metrics", "offers", "what it is"],
                 [[w.name, w.paper, ", ".join(w.metrics), ", ".join(sorted(w.capabilities)) or "-", w.summary]
                  for w in worlds.values()]))
    names = list(worlds)
    methods = [m for m in registry.methods().values() if any(name in m.worlds for name in names)]
    print("\nMethods (x: runs on that world)\n")
    print(_table(["method", "kind", *names, "what it is"],
                 [[m.name, m.kind, *("x" if name in m.worlds else "" for name in names), m.summary]
                  for m in methods]))
    print("\nTrain one: rl-cs train <method> --world <world>; evaluate a heuristic: rl-cs evaluate <method> "
          "--world <world>; check a world: rl-cs check <world>")
    return 0
