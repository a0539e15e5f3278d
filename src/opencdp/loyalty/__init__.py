"""Loyalty, pure: the programme (points, multipliers, bonuses, tiers, expiry), the ledger's
arithmetic, member tokens and the member card's face."""
