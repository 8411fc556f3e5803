"""berth/model"""
