/** The ioctl numbers of every modelled file type, as the uAPI headers give them. */
export * from './vfio.ts';
export * from './ioasid.ts';
export * from './iommufd.ts';
export * from './vhost.ts';
