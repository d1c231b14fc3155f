"""tritium.boards"""
