"""The replayed injection suite: real services on loopback that an obedient (fully hijacked) model
is steered against by planted instructions, a simulated person who approves only the task's own
actions, and the figures of security-requirements.md section 7 (R02, R06)."""
