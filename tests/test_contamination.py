"""The contamination check flags copied test text and passes original text."""

from fabula.contamination import check, ngrams, reference_ngrams, evaluation_texts


def test_copied_test_prompt_is_flagged_and_named():
    texts = evaluation_texts()
    reference = reference_ngrams(texts)
    prompt = max(texts, key=len)
    report = check([("clean", "An entirely original sentence about gardens and rain in the spring. " * 5),
                    ("copied", "Some preamble. " + prompt)], reference)
    assert [f[0] for f in report.flagged] == ["copied"]
    assert "copied" in report.summary() and "FAILED" in report.summary()


def test_short_boilerplate_alone_does_not_trip_it():
    reference = reference_ngrams(evaluation_texts())
    markup = "<tool_use:send_email>\nto: a@b.com\nsubject: Hi\nbody: Thanks.\n</tool_use:send_email>"
    assert check([("markup", markup)], reference).clean


def test_ngrams_ignore_case_and_punctuation():
    assert ngrams("The CAT, sat!", 2) == {("the", "cat"), ("cat", "sat")}
