"""Merchant settlement (商户结算): payout holds, payout runs and their bank file, the bank's confirmations, daily
merchant statements, and clawbacks (追回) of redemptions.

    merchant:<m> --payout--> payout:<m> --payout_confirm--> settled:<m>
         ^                       |
         +---payout_reversal-----+         escrow:<campaign> <--clawback-- merchant:<m>

Every move is one balanced ledger transaction written in the same database transaction as its cause (a run's
item, a confirmation, a clawback). `service` holds the runs, holds and confirmations, `statements` the statements,
`clawbacks` the clawbacks; `repository` their SQL; `endpoints` the HTTP routes. See docs/settlement.md.
"""
