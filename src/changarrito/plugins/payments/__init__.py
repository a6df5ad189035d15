"""Built-in payment providers: Stripe, Mercado Pago and Clip.

Each module is a plugin like a third party's: it defines one ``PaymentProvider`` subclass and
registers the class from a ``register_payment_providers`` hook, and calls its API through
``Provider.call_json``. The underscore modules are helpers they share (money in minor units,
webhook signatures, idempotency keys); nothing here imports an SDK.
"""
