"""`rl-cs check <world>`: the world conformance suite (rl_cs.conformance) on a registered world.

Bad input (unknown world, a config for another world, a world whose env cannot be built) is an InputError
(exit 2); a failed check is exit 1; exit 0 only when every check passes.
"""

from __future__ import annotations

import sys
import traceback

from rl_cs import registry
from rl_cs.errors import InputError, require


def world_env_factory(world: registry.World, config_path: str | None, overrides: list[str], data_dir: str | None):
    """A zero-argument env factory for the world's config, after building one env to prove it can be built."""
    config = world.load_config(config_path, overrides)
    try:
        world.make_env(config, data_dir)
    except InputError:
        raise
    except Exception as error:  # the world's own code failed: a clear message, not a traceback
        frame = traceback.extract_tb(error.__traceback__)[-1]
        raise InputError(f"world '{world.name}'", f"its env could not be built: {type(error).__name__}: {error} "
                         f"(at {frame.filename}:{frame.lineno})", "fix the world's env or its config") from None
    return lambda: world.make_env(config, data_dir)


def check(args) -> int:
    from rl_cs.conformance import check_world

    world = registry.get_world(args.world_name, where="world")
    require(args.max_steps >= 1, "--max-steps", f"must be >= 1, got {args.max_steps}")
    require(args.seed >= 0, "--seed", f"must be >= 0, got {args.seed}")
    make_env = world_env_factory(world, args.config, args.set, args.data_dir)
    mask = registry.resolve(world.action_mask) if world.action_mask else None
    print(f"rl-cs check {world.name}: conformance suite (seed {args.seed}, at most {args.max_steps} steps per episode)",
          file=sys.stderr)
    results = check_world(make_env, action_mask=mask, agents_come_and_go="agents_come_and_go" in world.capabilities,
                          seed=args.seed, max_steps=args.max_steps,
                          progress=lambda name: print(f"  running {name} ...", file=sys.stderr, flush=True))
    width = max(len(result.name) for result in results)
    for result in results:
        print(f"{'PASS' if result.passed else 'FAIL'}  {result.name.ljust(width)}  {result.detail}")
    failed = [result.name for result in results if not result.passed]
    print(f"{world.name}: {len(results) - len(failed)} of {len(results)} checks passed"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
