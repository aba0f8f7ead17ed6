"""Content policy: levels and verdicts, the term list and its text matcher, the classifier, the picture checks."""
