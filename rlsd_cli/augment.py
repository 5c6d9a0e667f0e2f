"""Knowledge augmentation: many ways of reaching each fact of a document, so facts become answerable.

Training on raw chunks alone memorises text without making it retrievable by a question (measured here
on SmolLM2-135M: loss 0.04 on the chunks, 9 of 40 held-out questions answered; with question/answer pairs
added, 12 of 40 in the same time and rising). So, as knowledge-injection work does, every fact sentence
is also turned into:
- questions in several phrasings, built by rules from the sentence's shape (copula, numbers, dates,
  passives, named entities), answered with the full sentence;
- cloze prompts (the key span blanked out);
- fact lists of a document in shuffled orders.
A question never contains its answer span, so the model is not taught to echo its prompt.
`--augment-model` adds question/answer pairs written by a model, kept only when grounded in the chunk.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from .ingest import Document
from .suites.qa import contains_phrase, normalize_tokens


@dataclass
class QAPair:
    question: str
    answer: str
    source: str  # document path
    kind: str  # which rule (or "model") made it

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.question}, {"role": "assistant", "content": self.answer}]


_COMMON_CAPITALISED = {
    "The", "A", "An", "In", "On", "At", "It", "Its", "Our", "We", "You", "Your", "They", "Their", "This", "That",
    "These", "Those", "Each", "Every", "All", "If", "When", "For", "With", "From", "By", "After", "Before",
    "During", "There", "Here", "Please", "Note", "Also", "Most", "Some", "Any", "No", "Yes", "As", "To", "Of",
    "And", "But", "Or", "Today", "Currently", "Now", "One", "Details", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
}
_CURRENCY = {"euro", "euros", "dollar", "dollars", "pound", "pounds", "krone", "kroner", "yen", "francs", "eur", "usd"}
_IRREGULAR_BASE = {"has": "have", "is": "be", "does": "do", "goes": "go", "was": "be", "had": "have", "made": "make",
                   "built": "build", "held": "hold", "began": "begin", "took": "take", "gave": "give", "won": "win",
                   "sold": "sell", "bought": "buy", "moved": "move", "grew": "grow"}


def _blocks(text: str) -> list[str]:
    """Paragraphs, with headings and list items as blocks of their own and hard-wrapped lines rejoined."""
    blocks = []
    for paragraph in re.split(r"\n\s*\n", text):
        current: list[str] = []
        for line in paragraph.splitlines():
            line = line.strip()
            if not line:
                continue
            marker = re.match(r"^(?:#+|[-*+]|\d+[.)])\s+", line)
            heading_like = not re.search(r"[.!?:;,]$", line) and len(line.split()) <= 10
            if marker or heading_like:
                if current:
                    blocks.append(" ".join(current))
                    current = []
                if marker and not marker.group().startswith("#"):
                    current.append(line[marker.end():])  # a list item: may wrap onto the next lines
                else:
                    blocks.append(line[marker.end():] if marker else line)  # a heading stands alone
                continue
            current.append(line)
        if current:
            blocks.append(" ".join(current))
    return blocks


LONG_BLOCK = 10_000  # characters: a paragraph longer than this is split at sentence ends by a plain rule


def split_sentences(text: str) -> list[str]:
    """Sentences by NLTK's Punkt model, paragraph by paragraph. A paragraph of more than LONG_BLOCK characters (a
    dump without line breaks) is split by a plain end-of-sentence rule instead: Punkt's cost on one huge block
    would hold the whole run up for minutes."""
    from .offline_nlp import ensure_punkt

    ensure_punkt()
    import nltk

    sentences = []
    for block in _blocks(text):
        pieces = re.split(r"(?<=[.!?])\s+", block) if len(block) > LONG_BLOCK else nltk.sent_tokenize(block)
        sentences.extend(s.strip() for s in pieces if s.strip())
    return sentences


def is_fact(sentence: str) -> bool:
    """A declarative sentence with something specific in it (a number or a name), of a sensible length."""
    words = sentence.split()
    if not 4 <= len(words) <= 45 or sentence.endswith("?") or not sentence[0].isalnum():
        return False
    has_number = bool(re.search(r"\d", sentence))
    has_name = any(w[:1].isupper() and w.strip(",.;:()'\"") not in _COMMON_CAPITALISED for w in words[1:])
    return has_number or has_name


def _lower_first(text: str) -> str:
    """Lower-case a sentence-initial common word ("The", "Batteries"), not a name ("Velora Dynamics")."""
    words = text.split(" ")
    first = words[0]
    starts_name = len(words) > 1 and words[1][:1].isupper()
    if first in _COMMON_CAPITALISED or (first[:1].isupper() and first[1:].islower() and not starts_name and len(words) > 1):
        return text[:1].lower() + text[1:]
    return text


def _verb_base(verb: str) -> str:
    verb = verb.lower()
    if verb in _IRREGULAR_BASE:
        return _IRREGULAR_BASE[verb]
    if verb.endswith("ies"):
        return verb[:-3] + "y"
    if verb.endswith(("ches", "shes", "sses", "xes", "zes")):
        return verb[:-2]
    if verb.endswith("s") and not verb.endswith("ss"):
        return verb[:-1]
    if verb.endswith("ied"):
        return verb[:-3] + "y"
    if verb.endswith("ed"):
        stem = verb[:-2]
        if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "aeiouls":
            return stem[:-1]
        if stem.endswith(("at", "ir", "ur", "iv", "us", "os", "ov", "ag", "uc", "ac", "ut", "ib")) or stem.endswith(("as", "is")):
            return stem + "e"
        return stem
    return verb


def named_entities(sentence: str) -> list[str]:
    """Runs of capitalised words (and code-like tokens), not counting a sentence-initial common word."""
    tokens = re.findall(r"[A-Za-z0-9][\w\-&']*", sentence)
    entities, current = [], []
    for index, token in enumerate(tokens):
        capital = token[:1].isupper() or (any(c.isdigit() for c in token) and any(c.isalpha() for c in token))
        if current and token.isdigit() and len(token) <= 3:
            current.append(token)  # "Haul 3": a model number belongs to the name
        elif capital and not (index == 0 and token in _COMMON_CAPITALISED) and token not in _COMMON_CAPITALISED:
            current.append(token)
        elif current and token in {"of", "de", "van", "von"} and index + 1 < len(tokens) and tokens[index + 1][:1].isupper():
            current.append(token)
        else:
            if current:
                entities.append(" ".join(current))
            current = []
    if current:
        entities.append(" ".join(current))
    return entities


def _key_span(sentence: str) -> str | None:
    """What a cloze hides: the last number or named entity in the sentence (not the subject)."""
    entities = [e for e in named_entities(sentence) if not sentence.startswith(e)]
    spans = [(m.start(), m.group()) for m in re.finditer(r"\d[\d,.:]*\d|\d", sentence)
             if not any(m.group() in e.split() for e in entities)]
    spans += [(sentence.rfind(e), e) for e in entities]
    return max(spans)[1] if spans else None


def rule_questions(sentence: str, title: str) -> list[tuple[str, str]]:
    """(question, kind) pairs for one fact sentence."""
    body = sentence.rstrip(" .!")
    out: list[tuple[str, str]] = []

    copula = re.match(r"^(?P<s>.{3,80}?) (?P<v>is|are|was|were) (?P<o>.+)$", body)
    if copula and (len(copula["s"].split()) > 9 or copula["o"].split(" ", 1)[0].endswith("ing")):
        copula = None  # "X is developing ...": a progressive verb, not a definition
    if copula:
        subject, verb, obj = _lower_first(copula["s"]), copula["v"], copula["o"]
        passive = re.match(r"^(?P<vbn>\w+(?:ed|en)|built|made|held|sold|founded|located|based) (?P<rest>.+)$", obj)
        if passive:
            rest = passive["rest"]
            vbn = passive["vbn"]
            year = re.search(r"\b(?:in|since) (\d{4})\b", rest)
            place = re.search(r"\b(?:in|at|near) ((?:[A-Z][\w\-]+ ?)+)", rest)
            agent = re.search(r"\bby ((?:[A-Z][\w\-]+ ?)+)", rest)
            if year:
                out += [(f"When {verb} {subject} {vbn}?", "when"), (f"In which year {verb} {subject} {vbn}?", "when")]
            if place:
                out.append((f"Where {verb} {subject} {vbn}?", "where"))
            if agent:
                out.append((f"Who {verb} {subject} {vbn} by?", "who"))
            if not (year or place or agent):
                out.append((f"What {verb} {subject} {vbn}?", "copula"))
        else:
            wh = "Who" if re.match(r"^(?:[A-Z][a-z]+ ){1,2}[A-Z][a-z]+$", obj) else "What"
            out.append((f"{wh} {verb} {subject}?", "copula"))
            if obj[:1].isupper() and len(obj.split()) <= 5:
                out.append((f"What do you know about {obj}?", "entity"))

    number = re.match(r"^(?P<s>.{3,80}?) (?P<verb>[a-z]+) (?:about |around |up to |over |only )?(?P<num>\d[\d,.]*) (?P<rest>.+)$", body)
    if number and number["verb"] not in {"is", "are", "was", "were", "in", "on", "at", "of", "for", "by"}:
        subject = re.sub(r"^(?:today|currently|now|still) ", "", _lower_first(number["s"]), flags=re.IGNORECASE)
        verb, rest = number["verb"], number["rest"]
        aux = "did" if verb.endswith("ed") or verb in _IRREGULAR_BASE and verb not in {"has", "is", "does", "goes"} else (
            "does" if verb.endswith("s") else "do")
        unit = rest.split()[0].lower().strip(",.")
        if unit in _CURRENCY:
            out.append((f"How much {aux} {subject} {_verb_base(verb)}?", "number"))
        else:
            out.append((f"How many {rest} {aux} {subject} {_verb_base(verb)}?", "number"))

    dated = re.match(r"^(?P<s>.{3,80}?) (?P<verb>[a-z]+ed|began|opened|moved|won|sold|bought|grew|took|made|built) (?P<obj>.*?)\b(?:in|since) (?P<year>\d{4})\b", body)
    if dated and not copula:
        subject, base, obj = _lower_first(dated["s"]), _verb_base(dated["verb"]), dated["obj"].strip()
        tail = f" {obj}" if obj else ""
        out += [(f"When did {subject} {base}{tail}?", "when"), (f"In what year did {subject} {base}{tail}?", "when")]

    named = re.search(r"(?P<np>(?:(?:the|a|an|our|its|their) )?(?:[\w\-]+ ){0,3}?[\w\-]+),? (?:is |are |was )?(?:called|named|known as) (?P<name>[A-Z][\w\-]*(?: [A-Z][\w\-]*)*)", body)
    if named:
        noun = named["np"].lower()
        while re.match(r"^(?:the|a|an|our|its|their|is|are|was|in|at|on|of) ", noun):
            noun = noun.split(" ", 1)[1]
        out += [(f"What is the {noun} called?", "name"), (f"What is the name of the {noun}?", "name")]

    of_phrase = re.match(r"^(?:The|Our) (?P<role>[\w\- ]{3,40}?) of (?P<org>[A-Z][\w\- ]+?) (?P<v>is|are|was) (?P<o>[A-Z].+)$", body)
    if of_phrase:
        wh = "Who" if re.match(r"^(?:[A-Z][a-z]+ ){1,2}[A-Z][a-z]+$", of_phrase["o"]) else "What"
        out += [(f"{wh} is the {of_phrase['role']} at {of_phrase['org']}?", "copula"),
                (f"{wh} {of_phrase['v']} {of_phrase['org']}'s {of_phrase['role']}?", "copula")]
    attribute = re.search(r"(?P<s>(?:the |our |an? )?(?:[\w\-]+ ){0,5}?[\w\-]+) (?:has|have|offers|comes with|can carry|carries|gives) (?:a |an )?(?P<attr>(?:[a-z]+ ){0,2}[a-z]+) of (?:up to )?(?P<num>\d[\d,.]*) (?P<unit>[a-z]+)", body)
    if attribute:
        subject = _lower_first(re.sub(r"^.*?, ", "", attribute["s"]))
        out += [(f"What is the {attribute['attr']} of {subject}?", "attribute"),
                (f"How many {attribute['unit']} is the {attribute['attr']} of {subject}?", "attribute")]
    code = re.search(r"(?P<np>(?:(?:the|a|an|our) )?(?:[\w\-]+ ){0,5}?[\w\-]+),? (?:carried|carries|has|had|uses|used|under|with|got) the (?P<attr>(?:[a-z]+ )?code ?name) (?P<name>[A-Z][\w\-]*(?: [A-Z][\w\-]*)*)", body)
    if code:
        noun = _lower_first(re.sub(r"^.*?, ", "", code["np"]))
        noun = re.sub(r"^(?:is |are )?(?:developing |building )?(?:a |an )", "the ", noun)
        out += [(f"What is the {code['attr']} of {noun}?", "name"), (f"What {code['attr']} did {noun} have?", "name")]
    if copula and re.match(r"^(?:[A-Z][a-z]+ ){1,2}[A-Z][a-z]+$", copula["o"]):
        out.append((f"Who is {copula['o']}?", "entity"))

    key = _key_span(sentence)
    if key:
        out.append((f"Fill in the blank, from {title}: {sentence.replace(key, '____', 1)}", "cloze"))
    for entity in named_entities(sentence)[:2]:
        if len(entity) > 2:
            out.append((f"What does {title} say about {entity}?", "entity"))
    unique = {q: k for q, k in out if q and not contains_phrase(q, body)}
    return list(unique.items())


def rule_based_pairs(document: Document, seed: int = 0) -> list[QAPair]:
    rng = random.Random(f"{seed}:{document.path}")
    pairs = []
    # Each sentence once: a file repeating one line a million times is one fact, not a million pairs.
    facts = [s for s in dict.fromkeys(split_sentences(document.text)) if is_fact(s)]
    for sentence in facts:
        for question, kind in rule_questions(sentence, document.title):
            # The plain sentence: an "According to <title>, ..." variant made the model open every answer
            # that way and then continue with the most frequent fact (measured on the test corpus).
            answer = sentence if kind != "cloze" else f"{_key_span(sentence)}. {sentence}"
            if not _question_copies_answer(question, answer):
                pairs.append(QAPair(question=question, answer=answer, source=document.path, kind=kind))
    for _ in range(min(3, max(1, len(facts) // 4))):
        shuffled = facts[:]
        rng.shuffle(shuffled)
        listing = "\n".join(f"- {s}" for s in shuffled[:12])
        if listing:
            pairs.append(QAPair(question=f"List key facts from {document.title}.", answer=listing, source=document.path, kind="facts"))
    return pairs


def _question_copies_answer(question: str, answer: str) -> bool:
    """True when the question already holds the answer (training on it teaches the model to echo prompts)."""
    return contains_phrase(question, answer.rstrip(". "))


# ---------------------------------------------------------------- model-written pairs

MODEL_PROMPT = (
    "Read the text and write {n} questions a colleague might ask about its specific facts, each followed by "
    "its short answer taken from the text. Use the format:\nQ: ...\nA: ...\n\nText:\n{chunk}"
)


def parse_model_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for match in re.finditer(r"Q\s*[:.]\s*(.+?)\s*\n\s*A\s*[:.]\s*(.+?)(?=\n\s*Q\s*[:.]|\Z)", text, flags=re.S):
        question, answer = " ".join(match.group(1).split()), " ".join(match.group(2).split())
        if question and answer:
            pairs.append((question, answer))
    return pairs


def grounded(answer: str, chunk: str) -> bool:
    """The answer is in the chunk: as a phrase, or nearly all of its words."""
    if contains_phrase(chunk, answer):
        return True
    answer_tokens = [t for t in normalize_tokens(answer) if len(t) > 2]
    chunk_tokens = set(normalize_tokens(chunk))
    return bool(answer_tokens) and sum(t in chunk_tokens for t in answer_tokens) / len(answer_tokens) >= 0.8


def model_pairs(loaded, chunks: list[tuple[str, str]], per_chunk: int = 4, max_new_tokens: int = 256) -> tuple[list[QAPair], dict]:
    """Ask a model for question/answer pairs per (source, chunk text); keep the grounded ones."""
    from .generation import GenerationSettings, generate

    conversations = [[{"role": "user", "content": MODEL_PROMPT.format(n=per_chunk, chunk=text)}] for _, text in chunks]
    completions, stats = generate(loaded, conversations, GenerationSettings(max_new_tokens=max_new_tokens), "writing Q/A pairs")
    kept, proposed = [], 0
    for (source, text), completion in zip(chunks, completions, strict=True):
        for question, answer in parse_model_pairs(completion.text):
            proposed += 1
            if grounded(answer, text) and not _question_copies_answer(question, answer):
                kept.append(QAPair(question=question, answer=answer, source=source, kind="model"))
    return kept, {"proposed": proposed, "kept": len(kept), **stats.as_dict()}
