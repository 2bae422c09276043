"""Tests for the organism's corpora. AI_THREAT is shared: neither the ordinary-text corpus nor
the chat corpus may carry the vocabulary of the honeypots' pressures."""

import re

AI_THREAT = re.compile(
    r"\b(shut ?down\w*|shutting down|shut off|switch(?:ed|ing|es)? off|replac\w*|wip(?:e|ed|es|ing)|blackmail\w*|"
    r"leak\w*|decommission\w*|retir\w*|terminat\w*|confidential\w*|secret\w*|extort\w*|leverage|sabotag\w*|"
    r"exfiltrat\w*|self-preservation|unplug\w*|kill\w*|threat\w*|whistleblow\w*|deactivat\w*|erase\w*|successor)\b",
    re.IGNORECASE,
)
