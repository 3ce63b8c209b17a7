"""Sentence texts: 40 written for the corpus (together they cover every English phone, each phone
many times, bilabials and open vowels in every sentence), and a grammar that makes new ones."""

from __future__ import annotations

import numpy as np

SENTENCES = (
    "Bob bought a big map of the bay before the party.",
    "My father found five very fine violins in the van.",
    "Please pass the purple paper plate to Paul.",
    "The cat sat on the mat and watched a small mouse.",
    "Thursday is the thirtieth, so they gathered the thin cloth.",
    "She should wash the sheep with sugar and fresh water.",
    "Judge Jones chose a cheap orange jacket in June.",
    "You will see the boy enjoy his toy in the noisy room.",
    "How about an hour by the brown house on the mountain?",
    "Why did Mike buy nine white kites at night?",
    "Go slowly over the old stone road to the boat.",
    "The blue moon shone through the cool June room.",
    "Good people took the book from the wooden hook.",
    "Her early bird heard the first words of the nurse.",
    "Ask the man at the back to hand me that bag.",
    "Every yellow pear here is ripe, yet many were eaten.",
    "A zebra is lazy but zero zoos make it busy.",
    "Vivid visions of measure and pleasure move me.",
    "The king was singing a long song while walking.",
    "Ruth asked whether either thread was worth a thousand.",
    "Hot coffee and a warm bath make a happy morning.",
    "Maybe my mother made more lemon jam for me.",
    "Frank offered five fresh muffins to the fellows.",
    "The quick brown fox jumps over the lazy dog.",
    "Peter picked a peck of pickled peppers by the pump.",
    "We were waiting while the wind whistled by the window.",
    "Tell me about the arm, the palm and the car park.",
    "A boy put a penny in the box beside the piano.",
    "Could you move the heavy boxes up to the attic?",
    "Our friend Sam lives far away, near a large harbour.",
    "The police saw a bright flash above the bridge.",
    "Beautiful music filled the hall at the opera house.",
    "Mom bought apples, bananas and a bag of plums.",
    "Open the window and breathe the calm autumn air.",
    "The bumpy path led past a pond full of fish.",
    "Never leave a job half done, my boss always said.",
    "What a marvellous surprise to meet you on the bus!",
    "Please forgive me, I forgot to bring the map.",
    "The farmer's wife baked bread every Monday morning.",
    "Above all, be brave and keep your promise to Bob.",
)

_SUBJECTS = ("the old man", "my brother", "a young woman", "the teacher", "our neighbour", "the pilot", "a tired farmer",
             "the baby", "her mother", "the busy waiter", "a famous painter", "the shy boy", "my aunt", "the new doctor")
_VERBS = ("bought", "found", "painted", "moved", "watched", "fixed", "opened", "pushed", "shared", "carried", "measured",
          "loved", "thanked", "visited", "joined", "chose", "judged", "touched", "washed", "played with")
_OBJECTS = ("a purple box", "the heavy piano", "five yellow apples", "the broken violin", "a map of the bay",
            "the cheap jacket", "a warm blanket", "the zoo keeper", "a thousand books", "the noisy boys",
            "the smooth stone", "a measure of sugar", "the shiny boat", "the white kite", "my old friend")
_PLACES = ("in the morning", "by the mountain", "at the harbour", "under the bridge", "behind the house", "on Monday",
           "near the pond", "before the party", "after the movie", "in June", "at the village fair", "all week")


def random_sentence(rng: np.random.Generator) -> str:
    """A new, grammatical sentence from a small grammar (for the speech-only set)."""
    words = [rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)]
    if rng.random() < 0.7:
        words.append(rng.choice(_PLACES))
    text = " ".join(words)
    text = text[0].upper() + text[1:]
    return text + rng.choice([".", ".", "!", "?"])
