"""Student and teacher must share a tokenizer and a chat template: the teacher scores the student's own token
ids, so one differing id or prompt format trains the student towards the teacher's answer to another text.
Checked on the tokenizers alone, before any model is loaded."""

from __future__ import annotations

import os

from distill.errors import DistillError

PROBE = [{"role": "user", "content": "What is 12 + 30?"}, {"role": "assistant", "content": "<think>\n2 + 0 = 2\n</think>\n\n\\boxed{42}"}]


def same_tokenizer(student, teacher, student_name: str, teacher_name: str) -> None:
    """Raise a one-line DistillError naming the first difference: vocabulary, special tokens or template."""
    where = f"student {student_name} vs teacher {teacher_name}"
    sv, tv = student.get_vocab(), teacher.get_vocab()
    if sv != tv:
        only_s = sorted(set(sv) - set(tv), key=sv.get)
        only_t = sorted(set(tv) - set(sv), key=tv.get)
        moved = sorted((t for t in set(sv) & set(tv) if sv[t] != tv[t]), key=sv.get)
        detail = (
            f"{len(only_s)} tokens only in the student (e.g. {only_s[:3]}), {len(only_t)} only in the teacher (e.g. {only_t[:3]}), "
            f"{len(moved)} with other ids (e.g. {moved[:3]})"
        )
        raise DistillError(f"{where}: different vocabularies ({len(sv)} vs {len(tv)} tokens: {detail}); on-policy KD needs one tokenizer")
    for attr in ("eos_token", "pad_token", "bos_token"):
        if getattr(student, attr) != getattr(teacher, attr):
            raise DistillError(f"{where}: different {attr} ({getattr(student, attr)!r} vs {getattr(teacher, attr)!r})")
    if not student.chat_template or not teacher.chat_template:
        missing = "student" if not student.chat_template else "teacher"
        raise DistillError(f"{where}: the {missing} has no chat template")
    rendered = [t.apply_chat_template(PROBE, tokenize=False) for t in (student, teacher)]
    if rendered[0] != rendered[1]:
        at = len(os.path.commonprefix(rendered))
        raise DistillError(
            f"{where}: different chat templates (a probe conversation renders differently from character {at}: "
            f"{rendered[0][at:at + 30]!r} vs {rendered[1][at:at + 30]!r})"
        )
