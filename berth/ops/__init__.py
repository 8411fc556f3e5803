"""berth/ops"""
