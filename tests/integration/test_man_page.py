#!/usr/bin/env python3
"""The man page (packaging/virtscale.1) names every subcommand and every flag
that `--help` of the agent and of each subcommand lists.

  test_man_page.py BINARY
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SOURCE_DIR, run_tests  # noqa: E402

BINARY = sys.argv[1]
COMMANDS = [[], ["check", "config"], ["test", "rules"], ["simulate"]]


def help_flags(command):
    out = subprocess.run([BINARY, *command, "--help"], capture_output=True, text=True,
                         check=True).stdout
    # "--web.listen-address TEXT", "-h,--help", "--query.source.NAME QUERY"
    return set(re.findall(r"(?:^|[\s,])(--[a-z][a-zA-Z0-9.-]*[a-zA-Z])", out, re.M)) - {"--help"}


def man_text():
    with open(os.path.join(SOURCE_DIR, "packaging", "virtscale.1")) as f:
        return f.read().replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace(
            "\\fI", "")


def test_every_flag_of_every_command_is_in_the_man_page():
    man = man_text()
    checked = 0
    for command in COMMANDS:
        flags = help_flags(command)
        assert flags, "no flags parsed from %s --help" % " ".join(command)
        for flag in sorted(flags):
            assert flag in man, "%s: %s is not in packaging/virtscale.1" % (
                " ".join(command) or "virtscale", flag)
            checked += 1
    print("checked %d flags" % checked)


def test_every_subcommand_is_in_the_man_page():
    man = man_text()
    for command in COMMANDS[1:]:
        assert (".B virtscale " + " ".join(command)) in man or (
            '.BI "' + " ".join(command)) in man, " ".join(command)


if __name__ == "__main__":
    sys.exit(run_tests([test_every_flag_of_every_command_is_in_the_man_page,
                        test_every_subcommand_is_in_the_man_page]))
