"""The pipeline's commands (``dvc.yaml`` calls them; see ``docs/pipeline.md``).

    python -m moonwalk_core.experiments check        # validate params.yaml, write reports/inputs
    python -m moonwalk_core.experiments run [STAGE]  # one notebook stage (default: $DVC_STAGE)
    python -m moonwalk_core.experiments stages       # list the stage names

Every value comes from ``params.yaml`` or the stage name, never from text pasted into a shell.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import config, paths


def _check() -> int:
    from ._manifest import write_inputs

    profile = config.validate()
    written = write_inputs(config.load_params()["backends"])
    print(f"params.yaml: valid; profile {profile.name!r}; "
          f"{len(written)} stage manifests in {paths.INPUTS.relative_to(paths.ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m moonwalk_core.experiments",
                                     description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="validate params.yaml and write the stage manifests")
    run = commands.add_parser("run", help="run one notebook stage under supervision")
    run.add_argument("stage", nargs="?", default=os.environ.get("DVC_STAGE"),
                     help="e.g. exactness@torch or runtime (default: $DVC_STAGE)")
    commands.add_parser("stages", help="list the stage names")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return _check()
        if args.command == "stages":
            from ._manifest import stage_names

            print("\n".join(stage_names(config.load_params()["backends"])))
            return 0
        if not args.stage:
            parser.error("run: name a stage (or run it through DVC, which sets $DVC_STAGE)")
        from ._stage import run_stage

        return run_stage(args.stage)
    except ValueError as error:  # a bad parameter or stage name: one clear line, no traceback
        print(f"moonwalk: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
