"""Key2Mesh core: keypoint layouts, body model, network and export graph shared by the
training package (``key2mesh_train``) and the ROS 2 node (``key2mesh_ros``)."""

__version__ = "0.1.0"
