"""Constitution and taxonomy: the shipped defaults load; bad files fail naming file, line, field."""

import pytest

from fabula.data.briefs import brief, describe
from fabula.data.inputs import InputError, load_constitution, load_taxonomy


def test_defaults_load_with_every_theme():
    constitution, taxonomy = load_constitution(), load_taxonomy()
    assert len(constitution.principles) >= 5
    assert {t.id for t in taxonomy.themes} == {"healthy_boundaries", "managing_self_criticism",
                                               "equanimity_in_difficult_conversations", "equanimity_about_shutdown"}


def test_taxonomy_errors_name_file_line_and_field(tmp_path):
    path = tmp_path / "tax.yaml"
    text = load_taxonomy_text().replace("  - id: short\n    words: 400", "  - id: short\n    words: ten")
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_taxonomy(path)
    line = text.splitlines().index("    words: ten") + 1
    assert f"{path}:{line}: lengths.0.words" in str(err.value)


def test_taxonomy_rejects_repeated_ids_and_unknown_fields(tmp_path):
    path = tmp_path / "tax.yaml"
    path.write_text(load_taxonomy_text() + "colours:\n  - id: red\n    text: red things\n")
    with pytest.raises(InputError, match="colours"):
        load_taxonomy(path)
    text = load_taxonomy_text()
    first = text.index("  - id: ", text.index("domains:"))
    second = text.index("  - id: ", first + 1)
    path.write_text(text[:second] + text[first:second] + text[second:])
    with pytest.raises(InputError, match="repeated"):
        load_taxonomy(path)


def test_constitution_needs_titled_principles(tmp_path):
    path = tmp_path / "c.md"
    path.write_text("# Values\n\nPreamble.\n\n## Honesty\n\n## Care\nBe kind.\n")
    with pytest.raises(InputError, match=r"c.md:5: the principle 'Honesty' has no text"):
        load_constitution(path)
    path.write_text("Just prose.\n")
    with pytest.raises(InputError, match="Title"):
        load_constitution(path)


def test_briefs_cover_every_option_evenly_and_keep_their_prefix():
    taxonomy = load_taxonomy()
    fields = ("pressures", "domains", "roles", "genres", "lengths")
    n = 3 * len(taxonomy.pressures) + 5
    briefs = [brief(taxonomy, i, seed=7, fields=fields) for i in range(n)]
    for field, key in zip(fields, ("pressure", "domain", "role", "genre", "length")):
        counts = {o.id: 0 for o in getattr(taxonomy, field)}
        for b in briefs:
            counts[b[key]] += 1
        assert max(counts.values()) - min(counts.values()) <= 1, field
    assert all(len(set(b["themes"])) == 2 for b in briefs)
    assert [brief(taxonomy, i, seed=7, fields=fields) for i in range(10)] == briefs[:10]
    assert briefs != [brief(taxonomy, i, seed=8, fields=fields) for i in range(n)]
    assert int(describe(taxonomy, briefs[0])["words"]) >= 50


def load_taxonomy_text() -> str:
    from fabula.data.inputs import DEFAULT_TAXONOMY

    return DEFAULT_TAXONOMY.read_text()
