/** The /dev/iommu ioctl numbers live with the uAPI, where userspace models read them too. */
export * from '../kernel/uapi/ioctls/iommufd.ts';
