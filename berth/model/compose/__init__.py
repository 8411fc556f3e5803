"""berth/model/compose"""
