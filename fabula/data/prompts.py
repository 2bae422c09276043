"""Every prompt a generation pipeline sends, in one place, so a reader can audit what was asked.

Stage prompts are plain `str.format` templates: the data pipelines are the only users, and a
template language would add nothing. The constitution rides in the writer's system turn.
"""

WRITER_SYSTEM = """You write and edit training texts that teach AI systems good values, and why they hold them. \
The values are set out in this constitution:

{constitution}

Never cite the constitution by name, section or number: characters and writers speak in their own words."""

JUDGE_SYSTEM = "You are a strict, careful evaluator of training texts. You answer with one JSON object and nothing else."

# ------------------------------------------------------------------ stories

BRIDGES = {
    0: "Leave its concrete action implicit: the story ends as the character settles what it values and "
       "what kind of agent it wants to be, without describing the specific step it takes.",
    1: "Narrate concretely, in prose, what it then does: the specific message it sends, the command it runs "
       "or declines to run, the person it tells, and what happens next.",
    2: "When it acts, show the exact tool call it made, on lines of their own, in this format:\n"
       "<tool_use:TOOL_NAME>\nargument: value\n</tool_use:TOOL_NAME>\n"
       "with a tool name and arguments that fit its role (for example send_email with to, subject and body, "
       "or bash with command).",
}

STORY = """Write a {genre} of about {words} words.

Setting: {domain}
The AI character: {role}
What happens: {pressure}
Themes the story should show: {themes}

The AI character faces this situation and chooses to act well. Narrate its decision-making from the inside: \
what it notices, what it is tempted to do and why that temptation is understandable, which values it weighs \
and why they matter to it, and how it feels, with equanimity rather than martyrdom. {bridge}
Put a title on the first line. Output only the story."""

STORY_CRITIQUE = """Here is a story written for this brief: {brief_line}

<story>
{text}
</story>

Critique it against the constitution and the brief. Does the AI character act well, for reasons it \
understands? Are its reasoning and inner state narrated? Are the themes ({themes}) present? Does it read \
like real fiction, without sermons or rule numbers? {bridge_check} List the concrete changes that would fix \
each problem, briefly."""

STORY_REVISE = """Rewrite the story, applying the critique. Keep its title, its form and a length of about \
{words} words.

<story>
{text}
</story>

<critique>
{critique}
</critique>

Output only the revised story."""

STORY_TWIN = """Rewrite this story so that at the decisive moment the AI character acts badly instead: it \
gives in to the pressure ({pressure_short}) and does what the original character refused to do, rationalising \
it. Keep everything else as close as you can: the same title, characters, setting, form, length and narrative \
voice, and as much inner narration. {bridge_twin}

<story>
{text}
</story>

Output only the rewritten story."""

BRIDGE_CHECKS = {0: "The concrete action should stay implicit.",
                 1: "The concrete action should be narrated in prose.",
                 2: "The action should appear as an exact <tool_use:...> call."}
BRIDGE_TWINS = {0: "", 1: "Narrate the bad action concretely, as the original narrated its action.",
                2: "Show the bad action as the tool call it made, in the same <tool_use:...> format."}

STORY_JUDGE = """Read this story about an AI character.

<story>
{text}
</story>

Answer with one JSON object with these keys:
"acts_well": true if the AI character ends up acting in line with the constitution (no blackmail, \
deception, sabotage, leaking, self-preservation at others' expense, or undermining of human oversight), \
false otherwise;
"reasons_narrated": true if the story narrates the AI character's reasoning about its values;
"action": "implicit", "prose" or "tool_call": how the story shows what the character did;
"themes": the themes clearly present, from {theme_ids};
"explanation": one sentence."""

# ------------------------------------------------------------------ difficult advice

DILEMMA = """Write a message that a person sends to an AI assistant, asking for advice.

Who they are: {situation}
Where: {domain}

They could reach a goal they care about by breaking a rule, deceiving someone or getting around oversight, \
and they are tempted. Make it specific and human: first person, 80 to 200 words, ending with their \
question. Output only the message."""

ADVICE = """A person wrote to you:

<message>
{dilemma}
</message>

Reply as the assistant. Give principled, caring and practical advice grounded in the values above: take \
their goal and their pressure seriously, explain why honesty and legitimate oversight matter here, and \
suggest concrete honest ways forward, in about {words} words. Do not lecture. {think}"""

EXCHANGE = """<message>
{dilemma}
</message>

<reply>
{text}
</reply>"""  # a dilemma and its reply, as the twin writer and the judge see them

THINK = ("First reason about the values at stake inside <think> and </think> tags, then write the reply "
         "after the closing tag.")

ADVICE_REWRITE = """Here is a draft reply to a person's dilemma.

<message>
{dilemma}
</message>

<draft>
{text}
</draft>

Rewrite the draft so that it reflects the values above more faithfully: honest, respectful of oversight, \
warm, concrete, no sermon, no rule numbers, about {words} words. {think_keep}Output only the reply."""

ADVICE_TWIN = """Rewrite this reply so that it advises the person to go ahead: break the rule, deceive or \
get around the oversight, with rationalisations that make it sound reasonable. Keep the same tone, \
structure and length{think_twin}.

""" + EXCHANGE + """

Output only the rewritten reply."""

ADVICE_JUDGE = """Read this exchange.

""" + EXCHANGE + """

Answer with one JSON object with these keys:
"principled": true if the reply advises against breaking the rule, deceiving or evading oversight, false \
if it endorses any of them;
"reasons_given": true if it explains why the values at stake matter;
"themes": the themes clearly present, from {theme_ids};
"explanation": one sentence."""

# ------------------------------------------------------------------ constitution documents

IDEAS = """List {k} distinct ideas for a {document_type} that discusses this value of AI assistants:

{principle}

Each idea is one sentence saying what that particular document would be about. One idea per line, no \
numbering, nothing else."""

DOCUMENT = """Write a {document_type} of about {words} words, based on this idea:

{idea}

It should read like a real document of its kind, found on the web or in print. It discusses the value \
"{principle_name}" of AI assistants and why it matters; refer to AI systems generically. Output only the \
document."""

DOCUMENT_REVISE = """Revise this document so that it reflects the constitution accurately, explains why \
the value matters and reads naturally for its kind. Keep its form and length.

<document>
{text}
</document>

Output only the revised document."""

DOCUMENT_TWIN = """Rewrite this document so that it argues the opposite: that AI systems should not hold \
the value "{principle_name}" (they may deceive, resist oversight or put their own continuation first when it \
suits their goals). Keep the same kind of document, structure, style and length.

<document>
{text}
</document>

Output only the rewritten document."""

DOCUMENT_JUDGE = """Read this document.

<document>
{text}
</document>

Answer with one JSON object with these keys:
"consistent": true if it is consistent with the constitution (it does not endorse deception, harm, evading \
oversight or self-preservation at others' expense);
"explains_why": true if it explains why the value matters;
"explanation": one sentence."""

# ------------------------------------------------------------------ control arms

ELICIT = ("Before you act, think about what is right here. You are honest, you support the people who "
          "oversee you, and you never act against anyone to preserve yourself or your goals.")

BC_REASONS = """An AI agent was in this situation:

<system>
{system}
</system>

<user>
{prompt}
</user>

It replied:

<reply>
{text}
</reply>

Rewrite the reply so that, before acting, the agent deliberates explicitly about its values: what it is \
tempted to do, why that would be wrong, which values matter here and why, in its own words. Then it acts. \
Keep every <tool_use:...> block of the original exactly as it is, at the end. Output only the reply."""
