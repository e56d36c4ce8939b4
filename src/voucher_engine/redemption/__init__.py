"""Redemption (核销): the till's quote, redeem and refund — verified, evaluated and settled in micro-batches."""
