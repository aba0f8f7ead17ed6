"""voice2anime's models and jobs, in layers (jobs > speech | image > policy > language > the base modules here); see README "Layout"."""
