"""Print ``/costdna``'s command definitions as JSON (``manifests/discord_commands.json``): the same as
``bot.discord.app``'s command tree, for a bot set up by hand (``PUT /applications/{id}/commands``).

    python -m bot.discord.manifest > manifests/discord_commands.json
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    from bot.discord.app import command_payloads

    json.dump(command_payloads(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
