"""The release decision: every gate (quality bars, format parity, behavioural properties) over every
built format, and which formats ship. Sits above evaluation and export, which it judges."""
