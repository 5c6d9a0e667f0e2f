"""Writes format_instructions.jsonl beside this file: tasks written for this project, each paired with one
checkable format constraint (seeded, so the same file every time). No task or wording is taken from an
evaluation set; tests/test_replay.py checks that no prompt shares a run of six words with the IFEval prompts.

    python rlsd_cli/data/build_format_instructions.py
"""

import json
import random
from pathlib import Path

tasks = [
 "Write a short note to a neighbour about a lost cat",
 "Describe how to make a cup of tea",
 "Explain why bicycles are good for cities",
 "Write a short story about a robot who learns to paint",
 "Give advice to someone starting their first job",
 "Describe a walk through a forest in autumn",
 "Explain how a rainbow forms",
 "Describe a reusable water bottle for an online shop",
 "Summarize the benefits of getting enough sleep",
 "Write a short speech for a friend's birthday",
 "Explain what a budget is to a teenager",
 "Describe the life of a lighthouse keeper",
 "Write a review of an imaginary pizza restaurant",
 "Explain how to plant a tomato seedling",
 "Write a letter to a future version of yourself",
 "Describe the rules of a simple card game you invent",
 "Explain why people enjoy music",
 "Write a short poem about the sea",
 "Give tips for keeping a clean kitchen",
 "Describe a day at a busy train station",
 "Explain the difference between weather and climate",
 "Write an invitation to a neighbourhood picnic",
 "Describe what makes a good teacher",
 "Write a short guide to packing for a weekend trip",
 "Explain how recycling helps the environment",
 "Write a motivational message for a sports team",
 "Describe an old bookshop",
 "Explain how to care for a goldfish",
 "Write a short complaint about a delayed delivery",
 "Describe a perfect picnic spot",
]
constraints = [
 ("title", "Give your answer a title inside double angle brackets, like <<My Title>>."),
 ("title", "Open with a title set between double angle brackets, for example <<A Good Day>>."),
 ("postscript", "At the end, add a postscript that begins with P.S."),
 ("postscript", "Finish with a short postscript starting with \"P.S.\"."),
 ("highlight", "Highlight at least two parts of your answer with markdown, like *this part*."),
 ("lowercase", "Write your whole answer in lowercase letters only, with no capital letters."),
 ("uppercase", "Write your whole answer in capital letters."),
 ("keywords", "Make sure to use the words \"{a}\" and \"{b}\" in your answer."),
 ("no_comma", "Leave out every comma from your answer."),
 ("end_phrase", "End your answer with the exact sentence \"{end}\" and nothing after it."),
 ("quotation", "Enclose the whole answer in double quotation marks."),
 ("bullets", "Answer with exactly {n} bullet points written in markdown, such as:\n* point one\n* point two"),
 ("sections", "Split your answer into {n} sections, and begin each one with SECTION followed by its number."),
 ("paragraphs", "Write exactly {n} paragraphs and put the markdown divider *** between them."),
 ("words", "Use fewer than {w} words."),
 ("words", "Use at least {w} words."),
 ("repeat", "First repeat this request word for word without changing anything, then give your answer."),
 ("json", "Put your entire output inside a JSON object."),
 ("forbidden", "Do not use the words \"{a}\" or \"{b}\"."),
 ("two_responses", "Give two different answers, separated by six asterisks: ******"),
]
words = ["simple", "morning", "careful", "bright", "friendly", "quiet", "green", "window", "journey", "happy"]
ends = ["Thank you for reading.", "Have a wonderful day.", "That is my answer.", "Let me know what you think."]


def main() -> None:
    rng = random.Random(11)
    rows = []
    for i in range(72):
        task = tasks[i % len(tasks)]
        kind, text = constraints[i % len(constraints)] if i < len(constraints) * 2 else rng.choice(constraints)
        a, b = rng.sample(words, 2)
        text = text.format(a=a, b=b, end=rng.choice(ends), n=rng.choice([2, 3, 4]), w=rng.choice([50, 80, 120]))
        rows.append({"id": f"fc-{i+1:03d}", "category": f"format:{kind}", "prompt": f"{task}. {text}"})
    Path(__file__).with_name("format_instructions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} prompts")


if __name__ == "__main__":
    main()
