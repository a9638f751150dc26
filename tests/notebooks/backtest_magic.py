# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # `%%backtest` under papermill
#
# A cell that defines `signals` becomes a recorded backtest with an inline chart.

# %%
# %load_ext meridian

# %%
# %%backtest --param fld_offset=12 --name magic-notebook
import numpy as np
import pandas as pd

from meridian.indicators import cross_state, median_price, shift


def signals(data, fld_offset=10):
    fld = shift(median_price(data["High"], data["Low"]), fld_offset)
    return pd.Series(np.asarray(cross_state(data["Close"], fld)), index=data.index)

# %%
assert _backtest.params == {"fld_offset": 12}
