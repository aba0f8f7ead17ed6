"""Reading a description: Chinese scripts, the lexicon, translation to English and the prompt built from it."""
