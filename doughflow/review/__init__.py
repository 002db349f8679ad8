"""Human review: the packet people who know pizza judge, their verdicts, and the approval gate."""
