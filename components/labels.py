"""People's words for the codes stored in the data (channels, payment methods, acquisition channels)."""
from __future__ import annotations

VALUE_LABELS = {
    "web": "Web", "mobile": "Mobile", "marketplace_api": "Marketplace API", "sales_rep": "Sales rep",
    "card": "Card", "paypal": "PayPal", "apple_pay": "Apple Pay", "google_pay": "Google Pay",
    "klarna": "Klarna", "invoice": "Invoice", "paid_search": "Paid search", "social": "Social",
    "affiliate": "Affiliate", "email": "Email", "organic": "Organic", "referral": "Referral", "sales": "Sales team",
}


def label(value) -> str:
    """Returns the people's word for a stored code (the code itself when it has none)."""
    return VALUE_LABELS.get(value, str(value))
